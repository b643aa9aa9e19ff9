package javafx.application;
public final class Platform { public static void runLater(Runnable runnable) { throw new UnsupportedOperationException(); } }
