from components.infra_validator.component import InfraValidator, infra_validator, local_serving_spec

__all__ = ["InfraValidator", "infra_validator", "local_serving_spec"]
