"""The bot's client of the recommender server's HTTP API (the seed-001 chat routes and search)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = ["ServerClient", "ServerError"]


class ServerError(Exception):
    """The recommender server answered with an error, or could not be reached."""


@dataclass(frozen=True, slots=True)
class ServerClient:
    """Calls ``base_url`` (e.g. ``http://127.0.0.1:8000``) with an optional bearer token."""

    base_url: str
    session: aiohttp.ClientSession
    api_token: str | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_token}"} if self.api_token else {}

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with self.session.request(
                method, self.base_url.rstrip("/") + path, headers=self._headers(), **kwargs
            ) as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ServerError(f"the recommender server is unreachable: {exc}") from exc
        if response.status >= 400 or not isinstance(body, dict):
            message = body.get("message") if isinstance(body, dict) else None
            raise ServerError(message or f"the recommender server answered {response.status}")
        return body

    async def register(self, chat: int) -> bool:
        return bool((await self._call("POST", "/register", json={"chat_id": chat}))["exists"])

    async def unrated(self, chat: int) -> dict[str, Any]:
        return await self._call("POST", "/get_unrated_movie", json={"chat_id": chat})

    async def rate(self, chat: int, item: str, rating: float, scale: str = "1..5") -> bool:
        body = {"chat_id": chat, "movie_id": item, "rating": rating, "scale": scale}
        return bool((await self._call("POST", "/rate_movie", json=body)).get("recorded"))

    async def recommend(self, chat: int, top_n: int) -> dict[str, Any]:
        return await self._call("POST", "/recommend", json={"chat_id": chat, "top_n": top_n})

    async def personal_top(self, chat: int, n: int) -> list[dict[str, Any]]:
        """Recommendations without the seed's minimum of ratings (fold-in from the first one)."""
        body = await self._call("GET", "/recommend", params={"user": str(chat), "n": str(n)})
        return [{"id": entry["item"], **(entry.get("metadata") or {})} for entry in body["items"]]

    async def known_items(self, chat: int) -> int:
        """How many items the server knows the user has (window and fresh events)."""
        body = await self._call("GET", f"/users/{chat}/items")
        return len(body.get("fresh", [])) + len(body.get("window", []))

    async def find(self, title: str, n: int = 5) -> list[dict[str, Any]]:
        params = {"q": title[:200], "n": str(n), "match": "forgiving"}
        return list((await self._call("GET", "/items", params=params))["items"])
