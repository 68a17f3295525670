"""Run the tap with `python -m tap_baidu_tongji`."""

from tap_baidu_tongji.tap import TapBaiduTongji

TapBaiduTongji.cli()
