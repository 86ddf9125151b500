"""Launch spike: the promotion goes live at 20:00. Ramp to the peak in 60 s, hold it, then decay.

Peak users are `--users`, the run lasts `--run-time`: the ramp takes 60 s (or a third of a short run),
the peak holds until 80% of the run, and the last 20% decays to a fifth of the peak.
"""

from __future__ import annotations

from locust import LoadTestShape

RAMP_S = 60.0


class LaunchSpike(LoadTestShape):
    # It reads --users and --run-time as the peak and the length of the run.
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        peak = max(1, int(getattr(options, "num_users", None) or 100))
        duration = float(getattr(options, "run_time", None) or 300)
        elapsed = float(self.get_run_time())  # type: ignore[no-untyped-call]
        if elapsed >= duration:
            return None
        ramp = min(RAMP_S, duration / 3)
        if elapsed < ramp:
            users = peak * elapsed / ramp
        elif elapsed < duration * 0.8:
            users = peak
        else:
            decay = (elapsed - duration * 0.8) / (duration * 0.2)
            users = peak * (1 - 0.8 * decay)
        # Spawn fast enough to follow the curve: a ramp to the peak within a second of each step.
        return max(1, round(users)), max(1.0, peak / 5)
