"""A steady day: `--users` reached over the first tenth of the run, then held until `--run-time`."""

from __future__ import annotations

from locust import LoadTestShape


class SteadyDay(LoadTestShape):
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        users = max(1, int(getattr(options, "num_users", None) or 50))
        duration = float(getattr(options, "run_time", None) or 600)
        elapsed = float(self.get_run_time())  # type: ignore[no-untyped-call]
        if elapsed >= duration:
            return None
        warm_up = duration / 10
        return max(1, round(users * min(1.0, elapsed / warm_up))), max(1.0, users / warm_up)
