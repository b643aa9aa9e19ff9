package javafx.scene.control;
public class MenuItem {
    public MenuItem(String text) { throw new UnsupportedOperationException(); }
    public final void setOnAction(javafx.event.EventHandler<javafx.event.ActionEvent> value) { throw new UnsupportedOperationException(); }
}
