"""Write scikit-learn's wine data (178 samples, 13 features, 3 cultivars; shipped with it, offline) to wine.csv.

    python examples/tabular/make_wine_csv.py     # how wine.csv beside this file was made
"""

from pathlib import Path

from sklearn.datasets import load_wine

if __name__ == "__main__":
    frame = load_wine(as_frame=True).frame  # the 13 features and the column "target" (0, 1, 2)
    frame["cultivar"] = frame.pop("target").map(dict(enumerate(load_wine().target_names)))
    frame.to_csv(Path(__file__).with_name("wine.csv"), index=False)
