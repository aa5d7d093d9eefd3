"""handson: a course kit for running a containerised API on Amazon ECS (Fargate) behind an ALB."""

__version__ = "0.1.0"

__all__ = ["__version__"]
