"""``blaze deploy``: the manifests and the image that run an app on Kubernetes.

Built from the app itself (its models, its health services, the plugins it is served
with), as plain dicts written out as YAML::

    from blazerpc.deploy import KubernetesOptions, kubernetes_manifests, render_yaml

    print(render_yaml(kubernetes_manifests(app, "app.py:app", KubernetesOptions(image="me/app:1"))))

Plugins add objects of their own with the ``blazerpc_kubernetes_manifests`` hook (the
Open Inference Protocol plugin's KServe ``ServingRuntime`` and ``InferenceService``):
it gets the :class:`KubernetesTarget` and returns :class:`Manifest` objects.
"""

from ._image import app_source, dockerfile, find_checkout
from ._kubernetes import KubernetesTarget, kubernetes_manifests
from ._manifest import Manifest, render_yaml
from ._options import KubernetesOptions

__all__ = [
    "KubernetesOptions",
    "KubernetesTarget",
    "Manifest",
    "app_source",
    "dockerfile",
    "find_checkout",
    "kubernetes_manifests",
    "render_yaml",
]
