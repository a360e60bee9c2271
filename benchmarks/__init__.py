"""`make bench`: each target of the issues, measured against a baseline in the same run."""
