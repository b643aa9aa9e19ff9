package qupath.fx.dialogs;
public class Dialogs {
    public static void showErrorMessage(final String title, String message) { throw new UnsupportedOperationException(); }
    public static void showInfoNotification(final String title, final String message) { throw new UnsupportedOperationException(); }
}
