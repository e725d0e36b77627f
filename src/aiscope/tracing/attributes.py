"""OpenTelemetry GenAI semantic convention names, and a CallRecord as span attributes.

The names follow the GenAI conventions (open-telemetry/semantic-conventions-genai,
status "development"): they are spelled out here rather than imported from
``opentelemetry-semantic-conventions``, whose ``_incubating`` GenAI constants are
marked deprecated since the conventions moved to their own repository.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.util.types import AttributeValue

from aiscope.record import CallRecord

OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
REQUEST_TOP_P: Final = "gen_ai.request.top_p"
REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
REQUEST_SEED: Final = "gen_ai.request.seed"
REQUEST_STREAM: Final = "gen_ai.request.stream"
RESPONSE_ID: Final = "gen_ai.response.id"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
TOKEN_TYPE: Final = "gen_ai.token.type"
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

# aiscope's own attributes (no convention covers them).
COST_USD: Final = "aiscope.cost_usd"
COST_STATUS: Final = "aiscope.cost_status"
REQUEST_ID: Final = "aiscope.request_id"
#: the provider's own request id (HTTP header), next to the response id
UPSTREAM_REQUEST_ID: Final = "aiscope.upstream_request_id"
RETRY_COUNT: Final = "aiscope.retry_count"
USAGE_ESTIMATED: Final = "aiscope.usage.estimated"
OPERATIONS: Final = "aiscope.operations"
TAG_PREFIX: Final = "aiscope.tag."

#: GenAI metric names and their recommended histogram bucket boundaries.
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
TOKEN_USAGE_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip

#: aiscope provider ids (the pricing ids records carry) -> ``gen_ai.provider.name`` values.
PROVIDER_NAMES: Final = {
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "google-vertex": "gcp.vertex_ai",
    "vertex": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "azure": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "x-ai": "x_ai",
    "xai": "x_ai",
    "moonshot": "moonshot_ai",
    "moonshotai": "moonshot_ai",
    "ibm": "ibm.watsonx.ai",
}


def provider_name(provider: str) -> str:
    """The ``gen_ai.provider.name`` for an aiscope provider id (unchanged when it is
    already a well-known value such as ``openai``, ``anthropic``, ``groq``)."""
    return PROVIDER_NAMES.get(provider, provider)


def span_name(operation: str, model: str) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``."""
    return f"{operation} {model}"


def call_start_attributes(operation: str, model: str, provider: str) -> dict[str, AttributeValue]:
    """What is known when a call begins (also what samplers see)."""
    return {
        OPERATION_NAME: operation,
        PROVIDER_NAME: provider_name(provider),
        REQUEST_MODEL: model,
    }


def record_attributes(record: CallRecord) -> dict[str, AttributeValue]:
    """Every span attribute of a finished call."""
    u = record.usage
    attrs = metric_attributes(record)
    attrs[REQUEST_STREAM] = record.streaming
    if record.status == "ok" or record.has_usage:
        # a failed call that reported no usage has none: absent, not zero
        attrs[USAGE_INPUT_TOKENS] = u.input_tokens
        attrs[USAGE_OUTPUT_TOKENS] = u.output_tokens
    attrs[REQUEST_ID] = record.request_id
    attrs[COST_STATUS] = record.cost_status
    if u.cache_read_tokens:
        attrs[USAGE_CACHE_READ_INPUT_TOKENS] = u.cache_read_tokens
    if u.cache_write_tokens:
        attrs[USAGE_CACHE_CREATION_INPUT_TOKENS] = u.cache_write_tokens
    if u.reasoning_tokens:
        attrs[USAGE_REASONING_OUTPUT_TOKENS] = u.reasoning_tokens
    if u.estimated:
        attrs[USAGE_ESTIMATED] = True
    if record.response_id:
        attrs[RESPONSE_ID] = record.response_id
    if record.upstream_request_id:
        attrs[UPSTREAM_REQUEST_ID] = record.upstream_request_id
    if record.finish_reasons:
        attrs[RESPONSE_FINISH_REASONS] = tuple(record.finish_reasons)
    if record.time_to_first_token_s is not None:
        attrs[RESPONSE_TIME_TO_FIRST_CHUNK] = record.time_to_first_token_s
    if record.status == "error":
        attrs[ERROR_TYPE] = record.error_type or "_OTHER"
    if record.cost_usd is not None:
        attrs[COST_USD] = record.cost_usd
    if record.retry_count:
        attrs[RETRY_COUNT] = record.retry_count
    if record.operations:
        attrs[OPERATIONS] = tuple(record.operations)
    for key, value in record.tags.items():
        attrs[TAG_PREFIX + key] = value
    return attrs


def metric_attributes(record: CallRecord) -> dict[str, AttributeValue]:
    """The attributes of the GenAI client metrics (low cardinality: no ids, no tags);
    also the first ones of the span."""
    attrs: dict[str, AttributeValue] = {
        OPERATION_NAME: record.operation,
        PROVIDER_NAME: provider_name(record.provider),
        REQUEST_MODEL: record.model,
    }
    if record.response_model:
        attrs[RESPONSE_MODEL] = record.response_model
    if record.server_address:
        attrs[SERVER_ADDRESS] = record.server_address
        if record.server_port:
            attrs[SERVER_PORT] = record.server_port
    return attrs


__all__ = [
    "COST_STATUS",
    "COST_USD",
    "DURATION_BUCKETS",
    "ERROR_TYPE",
    "INPUT_MESSAGES",
    "METRIC_OPERATION_DURATION",
    "METRIC_TIME_TO_FIRST_CHUNK",
    "METRIC_TOKEN_USAGE",
    "OPERATIONS",
    "OPERATION_NAME",
    "OUTPUT_MESSAGES",
    "PROVIDER_NAME",
    "PROVIDER_NAMES",
    "REQUEST_ID",
    "REQUEST_MAX_TOKENS",
    "REQUEST_MODEL",
    "REQUEST_SEED",
    "REQUEST_STOP_SEQUENCES",
    "REQUEST_STREAM",
    "REQUEST_TEMPERATURE",
    "REQUEST_TOP_P",
    "RESPONSE_FINISH_REASONS",
    "RESPONSE_ID",
    "RESPONSE_MODEL",
    "RESPONSE_TIME_TO_FIRST_CHUNK",
    "RETRY_COUNT",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "SYSTEM_INSTRUCTIONS",
    "TAG_PREFIX",
    "TOKEN_TYPE",
    "TOKEN_USAGE_BUCKETS",
    "UPSTREAM_REQUEST_ID",
    "USAGE_CACHE_CREATION_INPUT_TOKENS",
    "USAGE_CACHE_READ_INPUT_TOKENS",
    "USAGE_ESTIMATED",
    "USAGE_INPUT_TOKENS",
    "USAGE_OUTPUT_TOKENS",
    "USAGE_REASONING_OUTPUT_TOKENS",
    "call_start_attributes",
    "metric_attributes",
    "provider_name",
    "record_attributes",
    "span_name",
]
