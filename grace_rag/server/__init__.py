"""`grace-rag serve`: a warm model behind an HTTP API (OpenAI-compatible embeddings, search, health, info).

``GraceService`` holds the model and the index; ``create_app`` is the FastAPI application;
``run`` serves it with uvicorn. Nothing here imports FastAPI until the server is built.
"""
