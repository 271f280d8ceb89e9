"""Lesson 4, reproduced: the notebook's three models on MovieLens, then its analysis.

Run:  python examples/lesson4.py [--data ml-latest-small] [--seed 42] [--keras1-schedule | --improved]

What it shows, in the notebook's order (the code is in minirec/lesson4.py, written to be read):
  * the dot-product model, the same with user and movie biases, and the small neural net,
    trained with the notebook's learning-rate schedule, per-epoch losses and the tracked
    prediction for user 3 / movie 6 after each stage;
  * the bias model's weights saved and loaded back;
  * a final table of validation MSE (plain MSE; Keras 1 printed it with the L2 penalty added).
The same run is `minirec lesson4`.
"""
import sys

from minirec.cli import main

if __name__ == "__main__":
    sys.exit(main(["lesson4", *sys.argv[1:]]))
