"""The one place that touches moto's internals, in two modules by concern.

moto answers the AWS APIs (the control plane).

* ``views``: plain-data reads and writes of moto's state, moto's WSGI application, its
  seed and reset, and ``ApiError``: everything the data plane calls. It imports none of
  the data plane's modules.
* ``hooks``: ``install(dataplane)`` and what only the hooks use: moto's response methods
  wrapped for the operations where the data plane must act or answer instead of moto,
  calling the data plane back. The server installs them once it has made its data plane
  (``hooks.install(plane)``); the data plane never imports them.

This package re-exports what the data plane calls from ``views`` (so
``moto_bridge.cluster_arn(...)``), and nothing of ``hooks``: importing it never imports
the hooks, nor through them the engine. Everything else in the sandbox works with plain
dicts and never imports moto.
"""

from handson.sandbox.dataplane.moto_bridge.views import (
    ApiError,
    account_of,
    accounts,
    cluster_arn,
    create_eni,
    create_log_group,
    db_instance_network,
    delete_eni,
    deregister_target,
    egress,
    existing_service,
    flow_logs,
    image_manifest,
    load_balancer_by_dns,
    load_balancer_network,
    load_balancers,
    log_group_exists,
    network_rules,
    put_log_events,
    random_digits,
    random_hex,
    random_uuid,
    register_target,
    reset,
    role_policies,
    role_propagating,
    role_trust_policy,
    rules_version,
    secret,
    seed,
    set_db_port,
    set_flow_log_delivery,
    target_group,
    target_groups,
    task_definition,
    wsgi_app,
)

__all__ = [
    "ApiError",
    "account_of",
    "accounts",
    "cluster_arn",
    "create_eni",
    "create_log_group",
    "db_instance_network",
    "delete_eni",
    "deregister_target",
    "egress",
    "existing_service",
    "flow_logs",
    "image_manifest",
    "load_balancer_by_dns",
    "load_balancer_network",
    "load_balancers",
    "log_group_exists",
    "network_rules",
    "put_log_events",
    "random_digits",
    "random_hex",
    "random_uuid",
    "register_target",
    "reset",
    "role_policies",
    "role_propagating",
    "role_trust_policy",
    "rules_version",
    "secret",
    "seed",
    "set_db_port",
    "set_flow_log_delivery",
    "target_group",
    "target_groups",
    "task_definition",
    "wsgi_app",
]
