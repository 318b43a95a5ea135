"""Payment providers: a pure protocol core and one thin transport module per provider."""
