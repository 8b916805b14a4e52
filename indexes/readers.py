"""Turning one file into text: LlamaIndex readers for text, Markdown, reST, HTML, PDF and DOCX."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from llama_index.core import Document
from llama_index.core.readers.base import BaseReader

from grace_rag import textio

TEXT_EXTENSIONS = (".txt", ".md", ".rst")
SUPPORTED_EXTENSIONS = (*TEXT_EXTENSIONS, ".html", ".htm", ".pdf", ".docx")


class _TextExtractor(HTMLParser):
    """Visible text of an HTML page, one block per paragraph-like element."""

    SKIP = {"script", "style", "head", "noscript", "template"}
    BLOCKS = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)

    def text(self) -> str:
        joined = "".join(self.parts)
        joined = re.sub(r"[ \t\r\f\v]+", " ", joined)
        return re.sub(r"\s*\n\s*\n\s*", "\n\n", joined).strip()


class TextReader(BaseReader):
    """Plain text, Markdown or reStructuredText file -> its text (UTF-8; other bytes are an error at file:line)."""

    def load_data(self, file: Path, extra_info: dict | None = None, **kwargs: Any) -> list[Document]:
        return [Document(text=textio.read_text(file), metadata=extra_info or {})]


class HtmlReader(BaseReader):
    """HTML file -> its visible text (scripts, styles and markup dropped)."""

    def load_data(self, file: Path, extra_info: dict | None = None, **kwargs: Any) -> list[Document]:
        parser = _TextExtractor()
        parser.feed(textio.read_text(file))
        return [Document(text=parser.text(), metadata=extra_info or {})]


class PdfReader(BaseReader):
    """PDF file -> text of every page (pypdf), pages separated by blank lines."""

    def load_data(self, file: Path, extra_info: dict | None = None, **kwargs: Any) -> list[Document]:
        try:
            from pypdf import PdfReader as _Pdf
        except ImportError:
            raise ImportError("reading .pdf files needs pypdf: pip install grace-rag[readers]") from None
        pages = [page.extract_text() or "" for page in _Pdf(str(file)).pages]
        return [Document(text="\n\n".join(p.strip() for p in pages if p.strip()), metadata=extra_info or {})]


class DocxReader(BaseReader):
    """Word .docx file -> its text (docx2txt)."""

    def load_data(self, file: Path, extra_info: dict | None = None, **kwargs: Any) -> list[Document]:
        try:
            import docx2txt
        except ImportError:
            raise ImportError("reading .docx files needs docx2txt: pip install grace-rag[readers]") from None
        return [Document(text=docx2txt.process(str(file)) or "", metadata=extra_info or {})]


#: LlamaIndex readers by extension; also usable as ``SimpleDirectoryReader(file_extractor=FILE_READERS)``.
FILE_READERS: dict[str, BaseReader] = {
    ".txt": TextReader(), ".md": TextReader(), ".rst": TextReader(),
    ".html": HtmlReader(), ".htm": HtmlReader(), ".pdf": PdfReader(), ".docx": DocxReader(),
}


def read_document(path: Path) -> str:
    """The text of one file; raises (OSError, ValueError, DataError for bytes that are not text, ...) when it cannot be read."""
    path = Path(path)
    reader = FILE_READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"unsupported file type {path.suffix!r}; supported: {' '.join(SUPPORTED_EXTENSIONS)}")
    text = "\n\n".join(doc.text for doc in reader.load_data(path) if doc.text.strip())
    return textio.check_text(text, f"the text read from {textio.shown(path)}")
