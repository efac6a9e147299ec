"""The simulator's seed: a YAML description of the cluster to start with.

```yaml
token: sim-token                  # bearer token the API accepts (default below)
anonymous: true                   # accept requests without a token (kubectl over http)
nodes: 3                          # node-1 … node-3, Ready and schedulable
unready_nodes: [node-3]           # these report Ready=Unknown
bad_images: [example/api:2.0.0]   # templates with these images never become ready
namespaces: [prod, staging]       # namespaces named by objects below are added anyway
deployments:
  - {namespace: prod, name: api, replicas: 3, image: example/api:1.2.0,
     history: [example/api:1.0.0, example/api:1.1.0],   # older revisions, oldest first
     paused: false, progress_deadline_seconds: 600, max_surge: 25%, max_unavailable: 25%}
statefulsets: [{namespace: prod, name: db, replicas: 2, image: postgres:16,
                history: [postgres:15]}]      # older ControllerRevisions, oldest first
daemonsets: [{namespace: prod, name: agent, image: example/agent:1}]
hpas: [{namespace: prod, name: web, kind: Deployment, target: web,
        min_replicas: 2, max_replicas: 10}]
pdbs: [{namespace: prod, name: api, selector: {app: api}, min_available: 2}]
```
Without a seed, ``DEFAULT_SEED`` is used. Parsing is pure and strict.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TOKEN = "remediator-simulator-token"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeploymentSeed(_Strict):
    namespace: str
    name: str
    replicas: int = Field(default=1, ge=0)
    image: str
    history: list[str] = Field(default_factory=list)
    paused: bool = False
    labels: dict[str, str] | None = None
    progress_deadline_seconds: int = Field(default=600, ge=1)
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"


class WorkloadSeed(_Strict):
    namespace: str
    name: str
    replicas: int = Field(default=1, ge=0)
    image: str
    history: list[str] = Field(default_factory=list)   # older revisions' images, oldest first


class HpaSeed(_Strict):
    namespace: str
    name: str
    kind: str = "Deployment"
    target: str
    min_replicas: int = 1
    max_replicas: int = 10


class PdbSeed(_Strict):
    namespace: str
    name: str
    selector: dict[str, str]
    min_available: int | str | None = None
    max_unavailable: int | str | None = None


class Seed(_Strict):
    token: str = DEFAULT_TOKEN
    # kubectl (client-go) sends no bearer token over plain http, so by default a request
    # without credentials is let in as an anonymous user; a wrong token is always refused.
    anonymous: bool = True
    nodes: int = Field(default=3, ge=1)
    unready_nodes: list[str] = Field(default_factory=list)
    bad_images: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)
    deployments: list[DeploymentSeed] = Field(default_factory=list)
    statefulsets: list[WorkloadSeed] = Field(default_factory=list)
    daemonsets: list[WorkloadSeed] = Field(default_factory=list)
    hpas: list[HpaSeed] = Field(default_factory=list)
    pdbs: list[PdbSeed] = Field(default_factory=list)

    def all_namespaces(self) -> list[str]:
        names = ["default", *self.namespaces]
        for group in (self.deployments, self.statefulsets, self.daemonsets, self.hpas,
                      self.pdbs):
            names += [x.namespace for x in group]
        return list(dict.fromkeys(names))


def load(text: str) -> Seed:
    """Parse a seed from YAML text (raises ``ValueError`` with the problem)."""
    data: Any = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError("a simulator seed must be a YAML mapping")
    return Seed.model_validate(data)


def load_file(path: str) -> Seed:
    with open(path, encoding="utf-8") as f:
        return load(f.read())


DEFAULT_SEED = Seed(
    bad_images=["example/api:2.0.0-bad", "example/web:bad"],
    namespaces=["prod", "staging"],
    deployments=[
        DeploymentSeed(namespace="prod", name="api", replicas=3, image="example/api:1.2.0",
                       history=["example/api:1.0.0", "example/api:1.1.0"]),
        DeploymentSeed(namespace="prod", name="web", replicas=2, image="example/web:3.1.0"),
        DeploymentSeed(namespace="prod", name="worker", replicas=1, image="example/worker:0.9.0",
                       paused=True),
        DeploymentSeed(namespace="staging", name="api", replicas=2, image="example/api:1.2.0",
                       history=["example/api:1.1.0"]),
    ],
    hpas=[HpaSeed(namespace="prod", name="web", target="web", min_replicas=2, max_replicas=10)],
)
