"""Stage two: join a logit store (or a live teacher) to a split, check it, hand it to training."""
