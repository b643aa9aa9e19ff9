package javafx.event;
public class ActionEvent extends Event { public ActionEvent() { super(null); } }
