"""ModelPort: trained models as fast, safe network services.

The public Python API is the client::

    from modelport import Client
    client = Client("http://127.0.0.1:8080", api_key="mp_...")
    client.predict("house-price", [[0.1, 0.2, 0.3]])
"""

from modelport.about import VERSION
from modelport.client import Client
from modelport.errors import ModelPortError

__all__ = ["Client", "ModelPortError", "__version__"]
__version__ = VERSION
