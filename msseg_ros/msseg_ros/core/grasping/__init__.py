"""From detections to pick candidates: mapping to the world, de-duplication, ranking."""
