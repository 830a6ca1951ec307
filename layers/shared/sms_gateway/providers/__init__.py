"""SMS providers behind one interface; everything one provider knows lives in its own folder."""
