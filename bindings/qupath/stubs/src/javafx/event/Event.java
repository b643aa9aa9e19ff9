package javafx.event;
public class Event extends java.util.EventObject { public Event(Object source) { super(source); } }
