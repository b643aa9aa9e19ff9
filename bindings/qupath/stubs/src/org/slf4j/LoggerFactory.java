package org.slf4j;
/** Fake: prints to stdout, replacing each "{}" with the next argument. */
public final class LoggerFactory {
    public static Logger getLogger(Class<?> clazz) {
        return new Logger() {
            private void log(String level, String format, Object... args) {
                StringBuilder b = new StringBuilder();
                int a = 0;
                int i = 0;
                while (i < format.length()) {
                    if (format.startsWith("{}", i) && a < args.length) { b.append(args[a++]); i += 2; } else { b.append(format.charAt(i++)); }
                }
                System.out.println("[" + level + " " + clazz.getSimpleName() + "] " + b);
            }
            @Override public void info(String format, Object... arguments) { log("INFO", format, arguments); }
            @Override public void warn(String format, Object... arguments) { log("WARN", format, arguments); }
            @Override public void error(String msg, Throwable t) { log("ERROR", msg + ": " + t); }
            @Override public void error(String format, Object... arguments) { log("ERROR", format, arguments); }
        };
    }
}
