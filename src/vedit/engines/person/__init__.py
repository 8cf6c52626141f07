"""What the engines that edit people share (``classic`` and ``vace`` import it, not each
other): finding the person before an edit and whether the models run here (``check.py``),
the person models (``segment.py`` selfie masks, ``pose.py`` BlazePose, ``people.py`` the
detector of people of any size), following the person's edge (``matte.py``), and the
edits built on them (``background.py``, ``clothing.py`` with ``garment.py``)."""
