package io.csranet;

/**
 * A segmentation stopped before it finished: its {@link ProgressListener} returned false, or
 * the calling thread was interrupted (the interrupt flag is left set). Nothing is returned.
 */
public class CsraCancelledException extends CsraException {
    private static final long serialVersionUID = 1L;

    /** A cancellation with a message saying why. */
    public CsraCancelledException(String message) {
        super(Status.CANCELLED, message);
    }
}
