"""vic's bridge to Gymnasium: one environment in a subprocess, spoken to over stdin/stdout.

Run by `vic agent --env gym:ID` as `python3 -c <this file> ID` (the text is compiled into vic).
Protocol `vic-env/1`: one JSON object per line in each direction.

On start the bridge writes a hello line:
    {"protocol": "vic-env/1", "id": ID, "obs_low": [...], "obs_high": [...],
     "act_low": [...], "act_high": [...], "max_steps": N or null, "act_n": N or null}
"act_n" is n for a Discrete(n) action space, whose act_low/act_high are then the one-hot
box [0, 1]^n; a step request then carries the action's index (an integer) instead of a list.
or, when it cannot start, {"error": MESSAGE, "kind": KIND} and exits with status 1, where
KIND is "missing_gymnasium", "unknown_env" or "unsupported_space".

Requests and replies:
    {"cmd": "reset", "seed": S}   -> {"obs": [...]}
    {"cmd": "step", "action": [...]} -> {"obs": [...], "reward": R, "terminated": B, "truncated": B}
    {"cmd": "close"}              -> the bridge exits with status 0
A request that fails gets {"error": MESSAGE, "kind": "env"}; the bridge keeps running.

The id `fake:Counter-v0` is an environment with no Gymnasium behind it, for tests:
obs (x, t) with x' = x + clip(a, -1, 1), reward -x'^2, truncated after 5 steps, reset x = seed.
The id `fake:Faller-v0` is a terminating one with a Discrete(2) action space: obs (x, t),
x' = x + (1 if a == 1 else -1), reward 1 per step, terminated when |x'| >= 3, truncated
after 8 steps, reset x = seed mod 3 - 1.
"""

import json
import math
import sys

PROTOCOL = "vic-env/1"


def send(obj):
    sys.stdout.write(json.dumps(obj, allow_nan=True) + "\n")
    sys.stdout.flush()


def bounds(values):
    return [v if math.isfinite(v) else (1e30 if v > 0 else -1e30) for v in map(float, values)]


class Counter:
    """The fake environment (see the module note)."""

    max_steps = 5
    obs_low, obs_high = [-1e30, 0.0], [1e30, 5.0]
    act_low, act_high = [-1.0], [1.0]

    def reset(self, seed):
        self.x, self.t = float(seed), 0
        return [self.x, 0.0]

    def step(self, action):
        self.x += min(max(float(action[0]), -1.0), 1.0)
        self.t += 1
        return [self.x, float(self.t)], -self.x * self.x, False, self.t >= self.max_steps


class Faller:
    """The fake terminating environment with discrete actions (see the module note)."""

    max_steps = 8
    act_n = 2
    obs_low, obs_high = [-3.0, 0.0], [3.0, 8.0]
    act_low, act_high = [0.0, 0.0], [1.0, 1.0]

    def reset(self, seed):
        self.x, self.t = float(int(seed) % 3 - 1), 0
        return [self.x, 0.0]

    def step(self, action):
        if not isinstance(action, int) or action not in (0, 1):
            raise ValueError(f"Faller takes 0 or 1, got {action!r}")
        self.x += 1.0 if action == 1 else -1.0
        self.t += 1
        return [self.x, float(self.t)], 1.0, abs(self.x) >= 3, self.t >= self.max_steps


class Gym:
    def __init__(self, env_id):
        try:
            import gymnasium
            import numpy as np
        except ImportError as e:
            send({"error": f"cannot import gymnasium ({e})", "kind": "missing_gymnasium"})
            sys.exit(1)
        try:
            self.env = gymnasium.make(env_id)
        except Exception as e:  # gymnasium raises several error types for a bad id
            send({"error": f"{type(e).__name__}: {e}", "kind": "unknown_env"})
            sys.exit(1)
        o, a = self.env.observation_space, self.env.action_space
        box, discrete = gymnasium.spaces.Box, gymnasium.spaces.Discrete
        if not isinstance(o, box) or not isinstance(a, (box, discrete)):
            send({"error": f"observation space {o} / action space {a}: only Box observations "
                           "and Box or Discrete actions are supported",
                  "kind": "unsupported_space"})
            sys.exit(1)
        self.np = np
        self.obs_low, self.obs_high = bounds(o.low.ravel()), bounds(o.high.ravel())
        if isinstance(a, discrete):
            self.act_n, self.act_start = int(a.n), int(a.start)
            self.act_low, self.act_high = [0.0] * self.act_n, [1.0] * self.act_n
        else:
            self.act_n = None
            self.act_low, self.act_high = bounds(a.low.ravel()), bounds(a.high.ravel())
        self.act_shape = a.shape
        self.max_steps = getattr(self.env.spec, "max_episode_steps", None)

    def reset(self, seed):
        obs, _ = self.env.reset(seed=int(seed))
        return [float(v) for v in self.np.asarray(obs).ravel()]

    def step(self, action):
        if self.act_n is not None:
            a = self.act_start + int(action)
        else:
            a = self.np.asarray(action, dtype=self.np.float32).reshape(self.act_shape)
        obs, r, term, trunc, _ = self.env.step(a)
        return [float(v) for v in self.np.asarray(obs).ravel()], float(r), bool(term), bool(trunc)


def main():
    if len(sys.argv) < 2:
        send({"error": "usage: gym_bridge.py ENV_ID", "kind": "unknown_env"})
        sys.exit(1)
    env_id = sys.argv[1]
    fakes = {"fake:Counter-v0": Counter, "fake:Faller-v0": Faller}
    env = fakes[env_id]() if env_id in fakes else Gym(env_id)
    send({"protocol": PROTOCOL, "id": env_id, "obs_low": env.obs_low, "obs_high": env.obs_high,
          "act_low": env.act_low, "act_high": env.act_high, "max_steps": env.max_steps,
          "act_n": getattr(env, "act_n", None)})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            cmd = req.get("cmd")
            if cmd == "close":
                return
            if cmd == "reset":
                send({"obs": env.reset(req.get("seed", 0))})
            elif cmd == "step":
                obs, r, term, trunc = env.step(req["action"])
                send({"obs": obs, "reward": r, "terminated": term, "truncated": trunc})
            else:
                send({"error": f"unknown command {cmd!r}", "kind": "env"})
        except Exception as e:
            send({"error": f"{type(e).__name__}: {e}", "kind": "env"})


if __name__ == "__main__":
    main()
