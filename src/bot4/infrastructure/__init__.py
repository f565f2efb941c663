"""Infrastructure every engine path goes through: platform contract, breakers, queues, metrics."""
