package qupath.lib.gui.scripting;
public interface ScriptEditor {
    void showScript(String name, String script);
}
