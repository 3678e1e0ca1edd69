"""Time series: forecast Mauna Loa CO2 up to 13 weeks ahead with an LSTM.

Data: ``rnnkit.datasets.co2()`` (weekly readings 1958-2001 from ``statsmodels``; the 59
missing weeks are linearly interpolated for the model's inputs, and never scored as targets).
Split by time: forecasts made from 1958-1989 train, 1990-1994 validate, 1995-2001 test.

The model sees the last 104 weeks as offsets from the latest reading (so it learns shapes,
not levels, and a rising trend does not take it outside its training range), and predicts
all 13 future offsets at once (``LSTM -> Last -> Linear(13)``, MSE). Baselines: the last value
(no change) and the seasonal naive forecast (the value 52 weeks before the target week).
The metric is mean absolute error in ppm over all horizons 1-13.

    python examples/co2_forecast.py            # about a minute on 2 cores
    python examples/co2_forecast.py --quick    # seconds
"""
from __future__ import annotations

import numpy as np

from _shared import parser, report, save_checkpoint, setup

from rnnkit import losses, nn, optim
from rnnkit.datasets import co2
from rnnkit.train import Trainer

LOOKBACK, HORIZON, SEASON = 104, 13, 52
SCALE = 3.0     # ppm: offsets over two years lie within a few ppm; keeps inputs near unit size


def make_windows(ppm: np.ndarray, origins: np.ndarray):
    """Inputs (N, LOOKBACK, 1) and targets (N, HORIZON) as offsets from ppm[origin]."""
    past = origins[:, None] + np.arange(-LOOKBACK + 1, 1)
    future = origins[:, None] + np.arange(1, HORIZON + 1)
    last = ppm[origins][:, None]
    x = ((ppm[past] - last) / SCALE)[..., None].astype(np.float32)
    y = ((ppm[future] - last) / SCALE).astype(np.float32)
    return x, y


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--hidden", type=int, default=64)
    args = p.parse_args()
    start = setup(args, "co2_forecast")
    data = co2()
    ppm, missing = data.ppm, data.missing
    years = data.dates.astype("datetime64[Y]").astype(int) + 1970
    print(f"{len(ppm)} weekly readings {data.dates[0]} .. {data.dates[-1]}; {missing.sum()} "
          "missing, filled by linear interpolation (inputs only; never scored)", flush=True)
    if args.quick:
        args.epochs, args.hidden = 15, 32

    # An origin is the last week the forecaster has seen; its targets are the next 13 weeks.
    origins = np.arange(LOOKBACK - 1, len(ppm) - HORIZON)
    target_year = years[origins + HORIZON]
    split = {"train": origins[target_year < 1990],
             "validation": origins[(years[origins] >= 1990) & (target_year < 1995)],
             "test": origins[years[origins] >= 1995]}
    sets = {k: make_windows(ppm, v) for k, v in split.items()}

    model = nn.Sequential(nn.LSTM(1, args.hidden, batch_first=True, seed=args.seed),
                          nn.Last(batch_first=True),
                          nn.Linear(args.hidden, HORIZON, seed=args.seed + 1))
    trainer = Trainer(model, losses.MSELoss(), optim.Adam(model.parameters(), lr=3e-3),
                      clip_grad_norm=1.0, seed=args.seed)
    trainer.fit(*sets["train"], epochs=args.epochs, batch_size=32,
                validation_data=sets["validation"], verbose=2)

    test = split["test"]
    future = test[:, None] + np.arange(1, HORIZON + 1)
    truth = ppm[future]
    scored = ~missing[future]                       # interpolated weeks are not evidence
    forecast = ppm[test][:, None] + SCALE * trainer.predict(sets["test"][0])
    last_value = np.repeat(ppm[test][:, None], HORIZON, axis=1)
    seasonal = ppm[future - SEASON]

    def mae(pred: np.ndarray) -> float:
        return float(np.abs(pred - truth)[scored].mean())

    scores = {"lstm": mae(forecast), "last_value": mae(last_value),
              "seasonal_naive": mae(seasonal)}
    by_h = np.array([np.abs(forecast - truth)[:, h][scored[:, h]].mean()
                     for h in range(HORIZON)])
    print(f"test 1995-2001, {len(test)} forecasts x {HORIZON} weeks, mean absolute error "
          f"(ppm): LSTM {scores['lstm']:.3f} | last value {scores['last_value']:.3f} | "
          f"seasonal naive {scores['seasonal_naive']:.3f}")
    print("LSTM error by horizon (weeks 1, 4, 8, 13): "
          + ", ".join(f"{by_h[h - 1]:.2f}" for h in (1, 4, 8, 13)), flush=True)
    best_baseline = min(scores["last_value"], scores["seasonal_naive"])
    result = {"example": "co2_forecast", "metric": "test_mae_ppm", "value": scores["lstm"],
              "baseline": best_baseline, "higher_is_better": False, **scores}
    # Inputs: the last `lookback` weekly readings minus the latest, divided by `scale_ppm`;
    # outputs: the next `horizon` weeks, likewise.
    save_checkpoint(model, args.out, {"lookback": LOOKBACK, "horizon": HORIZON,
                                      "scale_ppm": SCALE, "example": "co2_forecast",
                                      "result": result})
    report(result, start)


if __name__ == "__main__":
    main()
