"""Run the real `grace-rag` entry point as a program (for tests that kill an indexing process)."""

from grace_rag.cli.app import main

if __name__ == "__main__":
    main()
