

def test_weights_link_leaving_the_folder_is_refused(tmp_path):
    import os
    folder = _saved(tmp_path)
    outside = tmp_path / "secret.npz"
    os.replace(folder / "model.npz", outside)
    try:
        os.symlink(outside, folder / "model.npz")
    except OSError:
        pytest.skip("symbolic links are not available here")
    with pytest.raises(ValueError, match=r"model\.npz is a link to .*secret\.npz, outside the model's folder"):
        load_model(folder)
