package javafx.event;
public interface EventHandler<T extends Event> extends java.util.EventListener { void handle(T event); }
