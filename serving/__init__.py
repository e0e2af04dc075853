"""An embedded model server that keeps TensorFlow Serving's contract.

Same flags as ``tensorflow_model_server``, same model directory layout (``<base>/<version>/``),
same REST API and the gRPC services of ``tensorflow-serving-api``, so scripts, clients and
tests written against it work unchanged against real TF Serving in production.

Modules: ``options`` (flags and TF Serving's text-proto config files), ``manager`` (versions,
policy, hot reload), ``inference`` (predict / classify / regress shared by both APIs),
``codec`` (JSON and TensorProto <-> arrays), ``batching``, ``metrics``, ``rest``, ``grpc_api``,
``server`` (wiring, ``python -m pipeline serve``) and ``client`` (``python -m pipeline predict``).
"""
