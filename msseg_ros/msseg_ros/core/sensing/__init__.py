"""Frame sources (camera) and line assembly (line scanner)."""
