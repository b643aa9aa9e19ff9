package javafx.scene.control;
public class Menu extends MenuItem {
    public Menu(String text) { super(text); }
    public final javafx.collections.ObservableList<MenuItem> getItems() { throw new UnsupportedOperationException(); }
}
