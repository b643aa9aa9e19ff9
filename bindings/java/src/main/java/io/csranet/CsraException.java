package io.csranet;

import java.nio.charset.StandardCharsets;

/**
 * A failed native call: {@link #status()} is the C status, {@link #nativeMessage()} the
 * library's message (from {@code csra_last_error_message()} on the calling thread).
 *
 * <p>Unchecked, so Groovy scripts and lambdas need no ceremony. Invalid Java-side arguments
 * (null, negative sizes, wrong array lengths) are reported before any native call as
 * {@link NullPointerException} or {@link IllegalArgumentException}; a closed object as
 * {@link IllegalStateException}.
 */
public class CsraException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final Status status;
    private final int code;
    private final String nativeMessage;

    /** An exception with a status and the library's message. */
    public CsraException(Status status, String nativeMessage) {
        this(status, status.code(), nativeMessage);
    }

    CsraException(Status status, int code, String nativeMessage) {
        super(format(status, code, nativeMessage));
        this.status = status;
        this.code = code;
        this.nativeMessage = nativeMessage == null ? "" : nativeMessage;
    }

    private static String format(Status status, int code, String message) {
        String name = status == Status.UNKNOWN ? "status " + code : status.cName();
        return message == null || message.isEmpty() ? name : message + " (" + name + ")";
    }

    /** The status of the failed call. */
    public Status status() {
        return status;
    }

    /** The raw C status value (useful when {@link #status()} is {@link Status#UNKNOWN}). */
    public int code() {
        return code;
    }

    /** The native library's message, as it wrote it ("" if it gave none). */
    public String nativeMessage() {
        return nativeMessage;
    }

    /** Called from the JNI glue: the exception for a status and a UTF-8 message. */
    static Throwable fromNative(int code, byte[] utf8) {
        String msg = utf8 == null ? "" : new String(utf8, StandardCharsets.UTF_8);
        Status s = Status.fromCode(code);
        if (s == Status.CANCELLED) {
            return new CsraCancelledException(msg.isEmpty() ? "cancelled" : msg);
        }
        return new CsraException(s, code, msg);
    }
}
