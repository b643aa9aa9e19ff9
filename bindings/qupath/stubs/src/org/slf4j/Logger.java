package org.slf4j;
public interface Logger {
    void info(String format, Object... arguments);
    void warn(String format, Object... arguments);
    void error(String msg, Throwable t);
    void error(String format, Object... arguments);
}
