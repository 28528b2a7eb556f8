/** Registers every instruction family in the opcode table (import for its side effects). */
import './alu';
import './move';
import './control';
import './string';
import './system';
