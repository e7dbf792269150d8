"""The online loop's part of the OpenAPI description: recommendation ids and experiments."""

from __future__ import annotations

from typing import Any

from .common import json_ref

__all__ = ["ONLINE_SCHEMAS", "RECOMMENDATION_ID", "experiments_paths"]

RECOMMENDATION_ID: dict[str, Any] = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_-]{12}$",
    "description": "This answer's id (12 URL-safe characters). Every answer is logged under it "
    "to the exposures topic; an interaction that names it (POST /interactions "
    "recommendation_id, or the Kafka header) is attributed to this answer.",
}

_ARM = {"type": "object", "additionalProperties": True}

ONLINE_SCHEMAS: dict[str, Any] = {
    "Experiments": {
        "type": "object",
        "required": ["mode", "verdict"],
        "properties": {
            "mode": {"type": "string", "enum": ["off", "interleave", "ab"]},
            "experiment": {"type": "object", "nullable": True},
            "champion": {"type": "object", "nullable": True},
            "challenger": {"type": "object", "nullable": True},
            "challenger_store": {"type": "string", "nullable": True},
            "results": {
                "type": "object",
                "nullable": True,
                "description": "The monitor's figures: per arm, the difference with its 99 % "
                "interval, the verdict and the sample size",
                "properties": {"arms": _ARM},
            },
            "verdict": {"type": "string", "enum": ["champion", "challenger", "undecided"]},
            "sample": {"type": "object", "nullable": True},
        },
    },
    "ExperimentStarted": {
        "type": "object",
        "required": ["experiment", "replicas"],
        "properties": {
            "experiment": {"type": "object"},
            "replicas": {"type": "string", "enum": ["all", "this process"]},
        },
    },
}


def experiments_paths() -> dict[str, Any]:
    return {
        "/experiments": {
            "get": {
                "summary": "The running experiment (interleaving or A/B), both models, and the "
                "verdict with its sample size",
                "parameters": [],
                "responses": {"200": json_ref("Experiments", "Success")},
            },
            "post": {
                "summary": "Start (mode interleave or ab, share for A/B) or stop (mode off) an "
                "experiment on every replica",
                "security": [{"bearer": []}, {}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["mode"],
                                "properties": {
                                    "mode": {
                                        "type": "string",
                                        "enum": ["off", "interleave", "ab"],
                                    },
                                    "share": {
                                        "type": "number",
                                        "exclusiveMinimum": True,
                                        "minimum": 0,
                                        "exclusiveMaximum": True,
                                        "maximum": 1,
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": json_ref("ExperimentStarted", "Applied in this process"),
                    "202": json_ref("ExperimentStarted", "Sent to every replica"),
                    "400": json_ref("Error", "Not a mode, or a share outside (0, 1)"),
                    "401": json_ref("Error", "A bearer token is required (see --api-token)"),
                    "409": json_ref("Error", "No challenger (--challenger-model-dir)"),
                    "503": json_ref("Error", "Kafka did not take the record"),
                },
            },
        }
    }
