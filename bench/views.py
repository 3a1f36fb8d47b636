"""The 2-D views' pages (``view.html``): bytes and build time at the quick (1,000) and full (5,000) profiles' sizes.

    python bench/views.py [--data-dir ...]

Each page holds a stratified sample of the real test split at its PCA coordinates (the page's size does not depend
on the method) with the images in one WebP sheet, and Bokeh's JavaScript inline. Prints the page's bytes against
its bound (1.5 MB for 1,000 points, 6 MB for 5,000) and what the JavaScript and the sheet take of it.
"""

from __future__ import annotations

import re
import time

import click

from _data import bench_data_dir, data_dir_option, machine  # bench/ is sys.path[0] when run as python bench/x.py

BOUNDS = {1000: 1.5e6, 5000: 6e6}


@click.command()
@data_dir_option
def main(data_dir):
    from sklearn.decomposition import PCA

    from fmnist.data import load_dataset, stratified_indices
    from fmnist.embeddings.page import view_page

    ds = load_dataset(data_dir=str(bench_data_dir(data_dir)))
    print(machine())
    print(f"{'points':>7} {'page MB':>8} {'bound':>6} {'Bokeh JS MB':>11} {'sheet MB':>9} {'build s':>8}")
    for n, bound in BOUNDS.items():
        idx = stratified_indices(ds.y_test, n, 0)
        x = ds.x_test[idx]
        coords = PCA(2, random_state=0).fit_transform(x.reshape(n, -1) / 255.0)
        t0 = time.perf_counter()
        page = view_page(coords, ds.y_test[idx], list(ds.classes), ds.test_index[idx], x, f"raw / pca: {n} points")
        seconds = time.perf_counter() - t0
        size = len(page.encode())
        js = sum(len(m.group(1)) for m in re.finditer(r"<script(?![^>]*application/json)[^>]*>(.*?)</script>", page, re.S))
        sheet = len(re.search(r"data:image/webp;base64,[A-Za-z0-9+/=]+", page).group(0))
        print(f"{n:7,} {size / 1e6:8.3f} {bound / 1e6:6.1f} {js / 1e6:11.3f} {sheet / 1e6:9.3f} {seconds:8.2f}")


if __name__ == "__main__":
    main()
