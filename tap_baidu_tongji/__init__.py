"""Singer tap for Baidu Tongji (百度统计)."""
