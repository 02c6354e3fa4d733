"""Writing with a model another machine serves over the OpenAI completions API (backend "openai"): the HTTP
client (client.py), what each kind of server takes (servers.py), the probabilities it reports (choices.py), the
model as the studio shows it (engine.py) and the generation service's caller side (service.py)."""
