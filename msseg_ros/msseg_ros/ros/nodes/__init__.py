"""One module per node executable; each exposes ``main()``."""
