"""Live data: the broadcast hub that subscriptions read from, and the job queue."""
