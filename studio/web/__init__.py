"""`ai-writer serve`: the studio served to web browsers with textual-serve, one studio process per tab."""
