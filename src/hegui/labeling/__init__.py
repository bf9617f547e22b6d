"""GB 45438 labels: explicit and implicit, for text, images, audio and video, with a verifier."""
