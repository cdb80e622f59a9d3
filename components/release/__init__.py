"""Release analysis: whether a challenger may take the next step toward champion."""
