"""What the provisioning forkserver holds before it forks a worker per student.

A forkserver can only be told modules to import, so importing this module does the work:
papermill (which runs the notebooks), ipykernel (each worker forks its student's kernel
from itself, see ``kernels``) and botocore's models of the services the kit calls. Every
worker and kernel forked afterwards starts with them instead of reading them again.
"""

import ipykernel.kernelapp  # noqa: F401
import papermill  # noqa: F401

from handson.connection import load_service_models

load_service_models()
