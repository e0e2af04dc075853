"""TF Serving's gRPC services with the protos and stubs of ``tensorflow-serving-api``:
PredictionService (Predict, Classify, Regress, GetModelMetadata) and ModelService
(GetModelStatus, HandleReloadConfigRequest)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import codec
from serving.inference import Service, input_to_examples
from serving.manager import Servable
from serving.options import NotAllowedError, OptionsError, check_allowed, validate_model_config
from serving.status import ServingError, invalid

log = logging.getLogger("serving")
_STATE = get_model_status_pb2.ModelVersionStatus.State
_ERROR_UNKNOWN = 2  # tensorflow.error.Code.UNKNOWN
_ERROR_INVALID_ARGUMENT = 3
_ERROR_PERMISSION_DENIED = 7


def _spec(model_spec: Any) -> tuple[str, int | None, str | None]:
    version = model_spec.version.value if model_spec.HasField("version") else None
    return model_spec.name, version, model_spec.version_label or None


def _abort(context: grpc.ServicerContext, err: ServingError) -> None:
    context.abort(err.code, err.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, service: Service):
        self.service = service

    def _serve(self, api: str, request: Any, context: grpc.ServicerContext,
               work: Callable[[Servable], Any]) -> Any:
        name, version, label = _spec(request.model_spec)
        try:
            with self.service.observe(name, api, "GRPC") as info:
                servable = self.service.manager.resolve(name, version, label)
                info["version"] = servable.version
                return work(servable)
        except ServingError as err:
            _abort(context, err)

    @staticmethod
    def _response_spec(response: Any, request: Any, servable: Servable, signature_name: str) -> None:
        response.model_spec.name = servable.model
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext) -> Any:
        def work(servable: Servable) -> predict_pb2.PredictResponse:
            signature = servable.signature(request.model_spec.signature_name)
            codec.check_inputs(set(request.inputs), signature)
            inputs = {k: codec.proto_to_array(k, v, signature.inputs[k]) for k, v in request.inputs.items()}
            outputs = self.service.filter_outputs(
                signature, self.service.run(servable, signature, inputs, timeout_s=context.time_remaining()),
                list(request.output_filter))
            response = predict_pb2.PredictResponse()
            self._response_spec(response, request, servable, signature.name)
            for key, array in outputs.items():
                response.outputs[key].CopyFrom(codec.array_to_proto(array))
            return response
        return self._serve("Predict", request, context, work)

    def Classify(self, request: classification_pb2.ClassificationRequest, context: grpc.ServicerContext) -> Any:
        def work(servable: Servable) -> classification_pb2.ClassificationResponse:
            classes, scores = self.service.classify(servable, request.model_spec.signature_name,
                                                    input_to_examples(request.input), context.time_remaining())
            response = classification_pb2.ClassificationResponse()
            self._response_spec(response, request, servable, request.model_spec.signature_name or "serving_default")
            for i in range(scores.shape[0]):
                row = response.result.classifications.add()
                for j in range(scores.shape[1]):
                    label = classes[i][j] if classes is not None else b""
                    row.classes.add(label=label.decode() if isinstance(label, bytes) else str(label),
                                    score=float(scores[i][j]))
            return response
        return self._serve("Classify", request, context, work)

    def Regress(self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext) -> Any:
        def work(servable: Servable) -> regression_pb2.RegressionResponse:
            values = self.service.regress(servable, request.model_spec.signature_name,
                                          input_to_examples(request.input), context.time_remaining())
            response = regression_pb2.RegressionResponse()
            self._response_spec(response, request, servable, request.model_spec.signature_name or "serving_default")
            for v in values:
                response.result.regressions.add(value=float(v))
            return response
        return self._serve("Regress", request, context, work)

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,
                         context: grpc.ServicerContext) -> Any:
        def work(servable: Servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise invalid(f"Metadata field {', '.join(f for f in fields if f != 'signature_def') or '(none)'} "
                              "is not supported: request metadata_field 'signature_def'")
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = servable.model
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(servable.signature_def_map)
            return response
        return self._serve("GetModelMetadata", request, context, work)


FORWARDED = "x-pipeline-forwarded"  # metadata on a ReloadConfig one server process passes to the others


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, service: Service, peers: Callable[[], list[int]] | None = None,
                 allowlist: tuple[Path, ...] = ()):
        self.service = service
        self.peers = peers  # the other server processes' private ports (--num_server_processes)
        self.allowlist = allowlist  # --model_base_path_allowlist (resolved roots)

    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest,
                       context: grpc.ServicerContext) -> Any:
        name, version, label = _spec(request.model_spec)
        try:
            with self.service.observe(name, "GetModelStatus", "GRPC"):
                states = self.service.manager.status(name, version, label)
        except ServingError as err:
            _abort(context, err)
        response = get_model_status_pb2.GetModelStatusResponse()
        for s in states:
            status = response.model_version_status.add(version=s.version, state=_STATE.Value(s.state))
            if s.error:
                status.status.error_code = _ERROR_UNKNOWN
                status.status.error_message = s.error
        return response

    def HandleReloadConfigRequest(self, request: model_management_pb2.ReloadConfigRequest,
                                  context: grpc.ServicerContext) -> Any:
        """Replaces the served model list (TF Serving's ReloadConfig); models no longer listed are unloaded."""
        response = model_management_pb2.ReloadConfigResponse()
        try:
            models = validate_model_config(request.config, "ReloadConfigRequest.config")
            # All or nothing: one model outside the allowed roots refuses the whole config.
            check_allowed(models, self.allowlist, "ReloadConfigRequest.config")
        except OptionsError as exc:
            denied = isinstance(exc, NotAllowedError)
            response.status.error_code = _ERROR_PERMISSION_DENIED if denied else _ERROR_INVALID_ARGUMENT
            response.status.error_message = str(exc)
            if denied:
                log.error("ReloadConfig refused: %s", exc)
            return response
        self.service.manager.apply_config(models)
        if self.peers and FORWARDED not in dict(context.invocation_metadata()):
            self._forward(request, response)
        return response

    def _forward(self, request: model_management_pb2.ReloadConfigRequest,
                 response: model_management_pb2.ReloadConfigResponse) -> None:
        """The other server processes apply the same config before the RPC returns."""
        for port in self.peers():  # type: ignore[misc]
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                try:
                    reply = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
                        request, metadata=((FORWARDED, "1"),), timeout=600)
                except grpc.RpcError as exc:
                    response.status.error_code = _ERROR_UNKNOWN
                    response.status.error_message = f"server process on port {port}: {exc.details()}"
                    continue
            if reply.status.error_code and not response.status.error_code:
                response.status.CopyFrom(reply.status)


class GrpcServer:
    """``reuse_port``: one of several processes on the port (SO_REUSEPORT); with ``peers`` it also
    listens on a private loopback port (``private_port``) for ReloadConfig forwarded by the others."""

    def __init__(self, service: Service, host: str, port: int, max_threads: int, max_message_bytes: int,
                 reuse_port: bool = False, peers: Callable[[], list[int]] | None = None,
                 allowlist: tuple[Path, ...] = ()):
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="grpc"),
            # Without it grpc queues RPCs beyond the pool without bound: the excess waits (and
            # holds memory) instead of failing fast. With it they get RESOURCE_EXHAUSTED at once.
            maximum_concurrent_rpcs=max_threads,
            options=[("grpc.max_receive_message_length", max_message_bytes),
                     ("grpc.max_send_message_length", -1),
                     # Alone, a port already in use must fail, not be shared.
                     ("grpc.so_reuseport", 1 if reuse_port else 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(service), self.server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(service, peers, allowlist), self.server)
        try:
            self.port = self.server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as exc:
            raise OSError(f"cannot bind the gRPC port {host}:{port}: {exc}") from None
        if not self.port:
            raise OSError(f"cannot bind the gRPC port {host}:{port} (in use?)")
        self.private_port = self.server.add_insecure_port("127.0.0.1:0") if peers is not None else None

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float = 2.0) -> None:
        self.server.stop(grace).wait()
