"""`agscm web`: a static site that runs an exported generator in the browser (onnxruntime-web).

Torch-free like the runtime: the model is checked with `agscm.runtime.Perturber`, the page's
own files live in `static/`, and onnxruntime-web comes from the pinned npm package (see
`ort_files`). The page reproduces the runtime's pixel arithmetic (static/pixels.js), so its PNGs
match `agscm perturb`'s within one 8-bit level (tests/test_web_browser.py measures it).
"""

from agscm.web.ort_files import ORT_VERSION, locate_ort_dist
from agscm.web.site import SiteReport, build_site

__all__ = ["ORT_VERSION", "SiteReport", "build_site", "locate_ort_dist"]
