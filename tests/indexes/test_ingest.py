"""Folder ingestion on the tiny encoder: formats, chunking, incremental runs, unreadable files."""

import zipfile
from pathlib import Path

import pytest

from grace_rag.errors import ConfigError, DataError
from grace_rag.indexes import GraceIndex
from grace_rag.indexes.ingest import (
    Indexer, IngestConfig, build_splitter, default_chunk_size, plan_changes, scan_folder,
)

PARAGRAPHS = {
    "bees.txt": "Honeybees dance to show where flowers are. The waggle run encodes distance.",
    "bread.md": "# Bread\n\nSourdough rises because wild yeast makes carbon dioxide in the dough.",
    "chess.rst": "Chess\n=====\n\nThe Sicilian Defence answers 1.e4 with c5 and leads to sharp play.",
}


class Counting:
    """The real encoder, recording every text it is asked to embed."""

    def __init__(self, encoder):
        self._encoder = encoder
        self.texts: list[str] = []

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode(self, texts, role="document"):
        self.texts.extend(texts)
        return self._encoder.encode(texts, role=role)


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF whose page draws ``text`` in Helvetica."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def minimal_docx(path: Path, text: str) -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", body)


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    for name, text in PARAGRAPHS.items():
        (root / name).write_text(text)
    (root / "sub" / "page.html").write_text(
        "<html><head><script>var hidden = 1;</script></head><body><p>Coral reefs bleach in hot water.</p></body></html>")
    (root / "sub" / "paper.pdf").write_bytes(minimal_pdf("Black holes bend light"))
    minimal_docx(root / "sub" / "memo.docx", "Compound interest doubles savings")
    (root / "data.csv").write_text("a,b\n1,2\n")  # not a supported type
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.txt").write_text("never indexed")
    return root


def run(tmp_path, encoder, root, **config):
    index = GraceIndex.open_or_create(tmp_path / "ix", encoder)
    try:
        return Indexer(index, encoder, IngestConfig(**config)).run(root), index.store.count()
    finally:
        index.close()


def test_every_supported_format_is_read_and_hidden_or_unknown_files_are_not(tmp_path, tiny, folder):
    report, _ = run(tmp_path, tiny, folder)
    assert report.files_seen == 6 and report.skipped == []
    with GraceIndex.open(tmp_path / "ix", encoder=tiny) as index:
        texts = {Path(h.source).name: h.text for h in index.search(tiny.encode(["x"]).vectors[0], k=100)}
    assert set(texts) == {"bees.txt", "bread.md", "chess.rst", "page.html", "paper.pdf", "memo.docx"}
    assert texts["paper.pdf"] == "Black holes bend light"
    assert texts["memo.docx"].strip() == "Compound interest doubles savings"
    assert texts["page.html"] == "Coral reefs bleach in hot water." and "hidden" not in texts["page.html"]


def test_chunks_record_source_position_and_respect_the_token_budget(tmp_path, tiny):
    root = tmp_path / "docs"
    root.mkdir()
    long_text = " ".join(f"Sentence number {i} talks about rivers and mountains." for i in range(60))
    (root / "long.txt").write_text(long_text)
    report, count = run(tmp_path, tiny, root, chunk_size=48, chunk_overlap=8)
    assert count > 5 and report.chunks_added == count
    tokenizer = tiny.backbone.tokenizer
    with GraceIndex.open(tmp_path / "ix") as index:
        chunks = index.get([f"{(root / 'long.txt').resolve().as_posix()}#{i}" for i in range(count)])
    assert [c.position for c in chunks] == list(range(count))
    assert all(len(tokenizer.encode(c.text, add_special_tokens=False)) <= 48 for c in chunks)
    assert "Sentence number 0" in chunks[0].text and "Sentence number 59" in chunks[-1].text


def test_unreadable_files_are_skipped_listed_and_never_abort(tmp_path, tiny, folder):
    (folder / "broken.pdf").write_bytes(b"this is not a pdf")
    (folder / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    report, _ = run(tmp_path, tiny, folder)
    assert sorted(Path(p).name for p, _ in report.skipped) == ["broken.pdf", "latin1.txt"]
    assert all(reason for _, reason in report.skipped)
    assert report.files_indexed == 6


def test_an_unchanged_folder_runs_no_model(tmp_path, tiny, folder):
    first, count = run(tmp_path, tiny, folder)
    counting = Counting(tiny)
    second, count_again = run(tmp_path, counting, folder)
    assert counting.texts == [] and second.chunks_embedded == 0
    assert second.files_unchanged == 6 and second.files_indexed == 0 and count_again == count


def test_changed_files_are_re_embedded_and_deleted_files_removed(tmp_path, tiny, folder):
    run(tmp_path, tiny, folder)
    (folder / "bees.txt").write_text("Wasps build paper nests from chewed wood fibre.")
    (folder / "bread.md").unlink()
    counting = Counting(tiny)
    report, _ = run(tmp_path, counting, folder)
    assert counting.texts == ["Wasps build paper nests from chewed wood fibre."]
    assert (report.files_indexed, report.files_removed, report.chunks_updated) == (1, 1, 1)
    with GraceIndex.open(tmp_path / "ix") as index:
        sources = {Path(h.source).name for h in index.search(tiny.encode(["x"]).vectors[0], k=100)}
        assert "bread.md" not in sources
        assert index.get([f"{(folder / 'bees.txt').resolve().as_posix()}#0"])[0].text.startswith("Wasps")


def test_a_moved_file_reuses_its_vectors(tmp_path, tiny, folder):
    run(tmp_path, tiny, folder)
    (folder / "chess.rst").rename(folder / "sub" / "chess_moved.rst")
    counting = Counting(tiny)
    report, _ = run(tmp_path, counting, folder)
    assert counting.texts == [] and report.chunks_added == 1 and report.files_removed == 1


def test_missing_or_empty_folder_is_a_clear_error(tmp_path, tiny):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no files to index"):
        run(tmp_path, tiny, tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        run(tmp_path, tiny, tmp_path / "nowhere")


def test_plan_changes_sorts_files_into_read_unchanged_and_deleted():
    stored = {"/r/a.txt": "1", "/r/b.txt": "2", "/r/gone.txt": "3", "/other/x.txt": "4"}
    current = {"/r/a.txt": "1", "/r/b.txt": "changed", "/r/new.txt": "5"}
    plan = plan_changes(current, stored, "/r")
    assert plan.to_read == ["/r/b.txt", "/r/new.txt"]
    assert plan.unchanged == ["/r/a.txt"]
    assert plan.deleted == ["/r/gone.txt"]  # files indexed from another root are kept


def test_scan_is_recursive_sorted_and_filtered(folder):
    names = [p.relative_to(folder).as_posix() for p in scan_folder(folder, (".txt", ".md", ".html"))]
    assert names == ["bees.txt", "bread.md", "sub/page.html"]


def test_default_chunk_size_fits_the_encoder_input():
    assert [default_chunk_size(n) for n in (64, 512, 4096)] == [64, 256, 512]


def test_bad_chunk_settings_are_config_errors(tiny):
    with pytest.raises(ConfigError):
        IngestConfig(chunk_size=8)
    with pytest.raises(ConfigError):
        IngestConfig(chunk_size=64, chunk_overlap=64)
    with pytest.raises(ConfigError):
        build_splitter(tiny, IngestConfig(chunk_overlap=1000))
