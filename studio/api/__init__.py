"""The engine behind an OpenAI-compatible completions API (`ai-writer serve-api`)."""
