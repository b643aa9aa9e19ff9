package qupath.lib.gui;
public class QuPathGUI {
    public javafx.scene.control.Menu getMenu(final String name, final boolean createMenu) { throw new UnsupportedOperationException(); }
    public qupath.lib.images.ImageData<java.awt.image.BufferedImage> getImageData() { throw new UnsupportedOperationException(); }
    public qupath.lib.gui.scripting.ScriptEditor getScriptEditor() { throw new UnsupportedOperationException(); }
}
