"""OpenAI-compatible gateway: moderation in the request path, streamed outputs included."""
