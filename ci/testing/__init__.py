"""pytest plugins the toolkit brings to any project's test run."""
